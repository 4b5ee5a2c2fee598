"""The local layer: the score network, noise schedules, patches, training, checkpoints, the model registry.

Modules: ``authors``, ``channels``, ``checkpoints``, ``export``, ``loss``, ``model_card``, ``patches``, ``registry``, ``schedules``, ``settings``, ``step``, ``training``, ``unet``. Import names from the module that defines them.
"""
