"""Analyses of trained models (what the papers claim their modules do)."""
