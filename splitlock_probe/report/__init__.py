"""Renderers: one result object in, tables, maps or documents out."""
