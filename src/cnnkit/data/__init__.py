"""Data: readers for each source, the Dataset form, splits, downloads and preprocessing."""
