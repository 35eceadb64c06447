"""Ops that detection recipes use: Letterbox, RandomScale, HSVJitter (docs/targets.md)."""
