"""Datasets: the in-memory container, patient-wise splits, the phantom and the NIH adapter."""
