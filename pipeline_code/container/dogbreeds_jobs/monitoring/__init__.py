"""Read an endpoint's capture and ground truth, judge drift and quality, publish metrics and reports."""
