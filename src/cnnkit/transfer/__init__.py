"""Transfer learning: pretrained backbones, cached features + classic heads, fine-tuning.

- :mod:`~cnnkit.transfer.backbones` — the :class:`Backbone` interface and ``load_backbone``;
- :mod:`~cnnkit.transfer.efficientnet_lite` — ImageNet weights for EfficientNet-Lite0;
- :mod:`~cnnkit.transfer.imagenet` — the 1000 ImageNet class names;
- :mod:`~cnnkit.transfer.sample` — small labelled samples of a data source;
- :mod:`~cnnkit.transfer.features` — batched embeddings with an on-disk cache;
- :mod:`~cnnkit.transfer.heads` — scikit-learn heads (logreg, svm, rf, mlp);
- :mod:`~cnnkit.transfer.finetune` — freezing, discriminative learning rates, fine-tuning jobs.
"""
