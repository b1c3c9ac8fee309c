"""RoBERTa pretraining ablations: config checks, cell identity, data pipeline and the cell runner."""
