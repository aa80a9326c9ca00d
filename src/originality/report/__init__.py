"""Figures, image grids and HTML reports."""
