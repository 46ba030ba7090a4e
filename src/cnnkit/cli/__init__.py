"""The command line (:mod:`cnnkit.cli.main`): the only part of cnnkit that parses arguments or
configures output.

Importing it asks OpenMP for sleeping threads first and then has torch's threads flush denormal
floats to zero (:mod:`cnnkit.openmp`): OpenMP reads its settings once, when torch starts, and
threads take the flushing from the thread that starts them.
"""

from cnnkit.openmp import flush_denormals, prefer_sleeping_threads

prefer_sleeping_threads()
flush_denormals()
