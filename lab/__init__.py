"""Development-only: a real Salt lab (masters and minions from PyPI) and the demo. Not in the wheel."""
