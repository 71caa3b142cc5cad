"""Data helpers shared by every pair: locating, downloading and verifying data files."""
