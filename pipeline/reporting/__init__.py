"""What people read, from the stages' JSON: the verdict and tables (text), report.md (markdown), the model card,
the plots, the damage report and the parity matrix."""
