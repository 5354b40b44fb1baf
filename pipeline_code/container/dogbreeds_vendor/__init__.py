"""Third-party code the container code needs and the SageMaker images lack, copied in unmodified.

Each package keeps its licence and an ORIGIN.txt (what was copied, from which release). Job code
imports it as ``dogbreeds_vendor.<package>``: a name no image or local install has, so the copy
in the code bundle (or in a model artifact's ``code/``) is what runs, everywhere.
"""
