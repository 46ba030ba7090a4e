"""The command line. The only part of cnnkit that parses arguments or configures output."""
