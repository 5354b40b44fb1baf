"""Names of the CloudWatch metrics the monitors publish: the contract between the monitoring jobs
(which put them) and the monitoring stack (alarms and dashboard that read them).

Namespace: ``<project>/<env>`` (passed to the jobs as an argument). Every metric carries the
dimensions ``Endpoint`` and ``Monitor``; per-feature drift metrics add ``Feature``.

One verdict: a metric an alarm watches says what the monitor concluded for that window, with the
monitor's own gates (minimum records, KS significance). A window too small to judge publishes its
counts and ``Judged`` = 0, and none of the distances or quality values: nothing an alarm could read
as drift or as a bad model.
"""

from __future__ import annotations

DIMENSION_ENDPOINT = "Endpoint"
DIMENSION_MONITOR = "Monitor"
DIMENSION_FEATURE = "Feature"

MONITOR_DATA_QUALITY = "data_quality"
MONITOR_MODEL_QUALITY = "model_quality"

# Both monitors
RECORDS_ANALYSED = "RecordsAnalysed"  # Count: capture records read in the window
JUDGED = "Judged"  # None: 1 when the window had enough data to judge, 0 when it did not
CORRUPT_RECORDS = "CorruptRecords"  # Count: capture lines skipped as unreadable
VIOLATIONS = "Violations"  # Count: constraint violations found in the window

# Data quality (per feature: dimension Feature)
FEATURE_PSI = "FeaturePSI"  # None: population stability index against the training baseline
FEATURE_KS = "FeatureKS"  # None: Kolmogorov-Smirnov distance against the training baseline
PREDICTION_DISTANCE = "PredictedBreedDistance"  # None: L-infinity distance of predicted-breed shares
PREDICTION_FEATURE = "predicted_label"  # the prediction feature whose distance is PREDICTION_DISTANCE
# Count: features (image and prediction features except the predicted breed) the monitor found
# drifted: distance over its threshold and, for numeric ones, beyond chance. The feature-drift alarm.
DRIFTED_FEATURES = "DriftedFeatures"

# Model quality
ACCURACY = "Accuracy"  # None: share of labelled records predicted right
MACRO_F1 = "MacroF1"  # None
TOP5_ACCURACY = "Top5Accuracy"  # None
GROUND_TRUTH_COVERAGE = "GroundTruthCoverage"  # None: share of captured records with a label
LABELLED_RECORDS = "LabelledRecords"  # Count

# Added by the monitoring jobs (names above are unchanged)
IMAGES_ANALYSED = "ImagesAnalysed"  # Count: images measured (a batch request holds several)
CORRUPT_GROUND_TRUTH = "CorruptGroundTruth"  # Count: ground-truth lines skipped as unreadable
