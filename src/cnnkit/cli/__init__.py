"""The command line (:mod:`cnnkit.cli.main`): the only part of cnnkit that parses arguments or
configures output.

Importing it asks OpenMP for sleeping threads first, unless the command trains
(:mod:`cnnkit.openmp`): the command's modules import torch, and OpenMP reads its settings
once, when torch starts.
"""

import sys

from cnnkit.openmp import prefer_sleeping_threads, subcommand

prefer_sleeping_threads(subcommand(sys.argv))
