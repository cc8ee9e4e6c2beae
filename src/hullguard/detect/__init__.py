"""Detectors: judge an inventory (packages, files, configuration) and produce findings."""
