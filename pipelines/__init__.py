"""The hala pipeline graph and its compiled cluster presets."""
