"""The baseline for bench_synth.py: the smallest useful CDK app (one stack, one bucket)."""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "bare")
s3.Bucket(stack, "Bucket")
app.synth()
