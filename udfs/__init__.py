"""Excel worksheet functions =PLAN_GAP() and friends (plan_tracker.udfs)."""
