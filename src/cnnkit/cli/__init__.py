"""The command line (:mod:`cnnkit.cli.main`): the only part of cnnkit that parses arguments or
configures output.

Importing it asks OpenMP for sleeping threads first (:mod:`cnnkit.openmp`): the command's
modules import torch, and OpenMP reads its settings once, when torch starts.
"""

from cnnkit.openmp import prefer_sleeping_threads

prefer_sleeping_threads()
