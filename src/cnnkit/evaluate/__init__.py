"""Evaluation: measuring a trained run on data, and the pictures and report around it."""
