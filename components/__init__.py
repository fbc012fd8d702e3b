"""Thin KFP components: typed artifacts in, one hala.* call, artifacts out."""
