"""Threats to a deployed network other than input perturbations in an ε-ball: errors in the
stored weight codes (bit_errors.py, bit_flip.py) and common corruptions of the input
(corruptions.py)."""
