"""The names inside a survey folder (``--out``): its campaigns, plans, predictors and outputs."""

#: the one campaign of every round, the probe's (the anchors timed alone) and the retest's
#: (models of the first round measured again, for the test-retest floor)
CAMPAIGN, PROBE, RETEST = "campaign", "probe", "retest"
#: each round's plan (a selector file) and predictor
PLANS, PREDICTORS = "plans", "predictors"
#: the published outputs: the last round's predictor, the release and the report
PREDICTOR, RELEASE, REPORT = "predictor.json", "release", "report"
