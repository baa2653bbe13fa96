"""plan-tracker: targets, gaps and department reporting for the West Coast New Area
manufacturing action plan (国家制造业高质量发展实验区行动方案)."""

__version__ = "0.1.0"
