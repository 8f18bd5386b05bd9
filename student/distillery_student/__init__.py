"""Distillery student runtime: the step-by-step trainer and the prediction server."""
