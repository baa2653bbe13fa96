"""Catalogue data and pandera schemas (plan_tracker.schemas)."""
