"""Vulnerability management policy: the ignore file and VEX documents."""
