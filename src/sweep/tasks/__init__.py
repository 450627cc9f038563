"""Abilities: a generated task suite (multi-digit arithmetic, multi-step arithmetic with and without written steps,
in-context learning, copying, fact recall), mixed into training and scored with exact-match and continuous metrics
side by side. items.py is the contract the other modules share."""
