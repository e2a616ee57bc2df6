"""Sample data, trace generators and tamper simulators for tests, benchmarks and the demo.

Public so that users can exercise a deployment with the same data the suite uses; the
product's data path never imports it.
"""
