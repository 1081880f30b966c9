"""On-device retraining: fine-tune a trained or pruned model on a device and measure the cost.

The host prepares a job folder (data subset, model in a device-loadable form, job.json),
ships it with the device-side scripts in `edgeopt.retrain.device` to a device (local or over
SSH), runs it there with the device's own python, and turns the result into a metrics JSON.
"""
