"""course_lib: the reference implementations of the Representation Learning course.

One small module per method, plus the shared pieces every chapter uses:

- :mod:`course_lib.utils`     device choice, seeding, quick mode, input checks
- :mod:`course_lib.data`      offline data loaders
- :mod:`course_lib.training`  the one training loop
- :mod:`course_lib.metrics`   trustworthiness, k-NN accuracy, reconstruction error, linear probe
- :mod:`course_lib.plotting`  embedding scatter plots, image grids
- :mod:`course_lib.pca`, :mod:`course_lib.mds`, :mod:`course_lib.eigenmaps`   (chapter 1)
- :mod:`course_lib.sammon`, :mod:`course_lib.tsne`                            (distance-preserving maps)
- :mod:`course_lib.autoencoders`, :mod:`course_lib.losses`, :mod:`course_lib.anomaly`  (autoencoders)
- :mod:`course_lib.corpora`, :mod:`course_lib.word2vec`, :mod:`course_lib.factorized`  (embeddings)
- :mod:`course_lib.sparse_tsne`, :mod:`course_lib.umap`, :mod:`course_lib.neighbors`  (neighbour embeddings at scale)
- :mod:`course_lib.vae`, :mod:`course_lib.vqvae`   (latent variable models: the VAE, the VQ-VAE and its prior)
- :mod:`course_lib.adversarial`   (GAN and ALI/BiGAN)
- :mod:`course_lib.contrastive`   (SimCLR, MoCo, SimSiam, Barlow Twins, VICReg, CLIP)
- :mod:`course_lib.masked`        (BERT's masking and the masked autoencoder)
- :mod:`course_lib.text`, :mod:`course_lib.book`   (count-based text features; glue for the book's numbers)
"""
from .utils import get_device, limit_cpu_threads, pick_size, quick_mode, seed_everything

__version__ = "0.1.0"

__all__ = ["get_device", "limit_cpu_threads", "pick_size", "quick_mode", "seed_everything", "__version__"]
