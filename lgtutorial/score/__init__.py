"""The local layer: the score network, noise schedules, patches, training, checkpoints, the model registry.

Modules: ``authors``, ``channels``, ``checkpoints``, ``export``, ``model_card``, ``patches``, ``registry``, ``schedules``, ``settings``, ``training``, ``unet``. Import names from the module that defines them.
"""
