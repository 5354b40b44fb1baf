"""Turn an ImageFolder tree into the training cache, the test split and the data baseline."""
