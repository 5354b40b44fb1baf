"""The training job, split the way torchvision's references/classification is, and the evaluation job.

``main`` parses the hyperparameters and runs the job; ``distributed`` joins the process group;
``data_cache`` reads preprocess's uint8 shards (resident or streamed); ``augmentation`` crops,
flips and normalises batches on the device; ``network`` builds the model and picks the precision;
``loop`` trains and evaluates one epoch; ``checkpoints`` saves and resumes. Helpers raise
``TrainingError``; only ``main`` turns it into the job's exit status. ``evaluate`` scores the
trained model on the test split through the handler code the endpoint will run.
"""
