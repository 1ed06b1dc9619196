"""The published weights of every network, as facts taken from the publishing library's source.

One ``PublishedWeights`` record per tag: where the file lives, how to check it, how its keys map onto ours (the
name tables of ``ti.interop``), which builder options it needs and the exact preprocessing it was trained with.
Sources (read in the libraries' installed code):

- torchvision 0.2x ``models/googlenet.py`` and ``models/inception.py``: ``GoogLeNet_Weights.IMAGENET1K_V1`` and
  ``Inception_V3_Weights.IMAGENET1K_V1`` (URL, ``ImageClassification(crop_size, resize_size)`` with ImageNet's
  mean/std and bilinear resizing, ``acc@1``, ``_file_size`` in MB). The builders force ``transform_input=True`` and
  load the aux heads' keys (GoogLeNet then drops its aux heads unless asked for: they were not trained).
  The file name carries the first 8 hex digits of the file's SHA-256; torch.hub checks that prefix.
- timm 1.x ``models/inception_v3.py``, ``inception_v4.py``, ``inception_resnet_v2.py``: ``default_cfgs`` with
  ``hf_hub_id='timm/'``, i.e. the Hugging Face repository ``timm/<model>.<tag>``; timm reads ``model.safetensors``
  from it (``_hub.HF_SAFE_WEIGHTS_NAME``). ``crop_pct``, bicubic interpolation, Inception mean/std (0.5). timm's
  source publishes no checksum and no accuracy for these files.
- pretrainedmodels 0.7.4 ``models/bninception.py``: ``pretrained_settings['bninception']['imagenet']`` (BGR,
  0-255, mean 104/117/128, std 1) and ``utils.TransformImage`` (resize to floor(224 / 0.875) = 256, centre crop).
  The README reports top-1 73.524. The file name ends in ``52deb4733``, but pretrainedmodels loads it without a
  hash check, so that suffix is not known to be a SHA-256 prefix and is not used as one here.
- facenet-pytorch 2.x ``models/inception_resnet_v1.py``: ``load_weights`` URLs; 8631 (VGGFace2) or 10575
  (CASIA-WebFace) classes; ``models/mtcnn.py``: ``fixed_image_standardization`` = (x - 127.5) / 128 on 160x160
  MTCNN face crops. The README gives file sizes and LFW accuracies (a face-verification score, not top-1).

Checksums: a full SHA-256 is verified when known; a torchvision prefix is verified as torch.hub does; otherwise
the SHA-256 is computed at the first download, printed, and kept beside the file (``<file>.sha256``).
"""
from dataclasses import dataclass, field

import numpy as np

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """The exact preprocessing of one weight tag: ``transforms(image) -> (3, crop, crop) float32``.

    Resize the shorter side to ``resize_size`` (``interpolation``), centre-crop ``crop_size``, scale to 0-1
    (``value_range`` 1) or keep 0-255, reorder to ``channel_order``, then (x - mean) / std per channel (means and
    stds in the same range and channel order as the values they apply to).
    """
    crop_size: int
    resize_size: int
    mean: tuple
    std: tuple
    interpolation: str = "bilinear"
    channel_order: str = "RGB"
    value_range: int = 1
    note: str = ""

    def __call__(self, image):
        """``image``: a file path, a PIL image or an (H, W, 3) uint8 array -> (3, crop_size, crop_size) float32."""
        from PIL import Image
        if isinstance(image, np.ndarray):
            image = Image.fromarray(np.asarray(image, dtype=np.uint8))
        elif not isinstance(image, Image.Image):
            with Image.open(image) as opened:
                return self(opened.convert("RGB"))
        return self.normalize(self.crop(self.resize(image.convert("RGB"))))

    def resize(self, image):
        """PIL image -> its shorter side ``resize_size`` (torchvision's rounding: the longer side truncated)."""
        from PIL import Image
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        method = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[self.interpolation]
        return image.resize(size, method)

    def crop(self, image):
        """PIL image -> its central ``crop_size`` square (torchvision's rounding of the corner)."""
        width, height = image.size
        top, left = int(round((height - self.crop_size) / 2.0)), int(round((width - self.crop_size) / 2.0))
        return image.crop((left, top, left + self.crop_size, top + self.crop_size))

    def normalize(self, image):
        """PIL RGB image -> (3, H, W) float32 in the tag's range, channel order, mean and std."""
        values = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
        values = values / 255.0 if self.value_range == 1 else values
        if self.channel_order == "BGR":
            values = values[::-1]
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        return np.ascontiguousarray((values - mean) / std, dtype=np.float32)

    def describe(self):
        return (f"resize shorter side to {self.resize_size} ({self.interpolation}), centre crop {self.crop_size}, "
                f"{self.channel_order} {'0-1' if self.value_range == 1 else '0-255'}, mean {self.mean}, "
                f"std {self.std}")


@dataclass(frozen=True)
class PublishedWeights:
    """One published weight file: facts from the publishing library (see the module docstring)."""
    model: str                      # our builder's name
    tag: str
    source: str                     # the publishing library and its name for the weights
    url: str
    filename: str                   # name in the cache folder
    file_format: str                # "pytorch zip", "pytorch legacy", "pytorch", "safetensors"
    num_classes: int
    categories: str                 # "imagenet" or a description of the classes
    preprocessing: Preprocessing
    model_kwargs: dict = field(default_factory=dict)    # builder options the file needs
    sha256: str = None              # the full hash, where the publisher gives one
    sha256_prefix: str = None       # torchvision's file-name prefix of the hash, checked as torch.hub does
    checksum_note: str = ""
    key_mapping: str = ""           # how the file's keys map onto ours
    file_size_mb: float = None      # as the publisher states it
    reported_accuracy: str = ""     # as the publisher reports it
    notes: str = ""

    def transforms(self):
        """The preprocessing these weights expect: a callable image -> (3, H, W) float32."""
        return self.preprocessing

    def class_names(self):
        """The class names of the outputs (the 1000 ImageNet classes), or None where the publisher ships none."""
        if self.categories != "imagenet":
            return None
        from ..data.imagenet import imagenet_classes
        return imagenet_classes()

    @property
    def input_size(self):
        return self.preprocessing.crop_size


TORCHVISION_NOTE = ("torchvision publishes the first 8 hex digits of the SHA-256 in the file name; they are checked "
                    "after the download, as torch.hub does")
UNPUBLISHED_NOTE = ("the publisher's source gives no checksum: the SHA-256 is computed at the first download, "
                    "printed and kept beside the file")
TIMM_ACCURACY = "not stated in timm's source (see timm's published results tables)"


def _timm(model, tag, crop_pct, mean=INCEPTION_MEAN, std=INCEPTION_STD, model_kwargs=None, notes=""):
    import math
    return PublishedWeights(
        model=model, tag=tag, source=f"timm {model}.{tag}",
        url=f"https://huggingface.co/timm/{model}.{tag}/resolve/main/model.safetensors",
        filename=f"timm-{model}.{tag}.safetensors", file_format="safetensors", num_classes=1000,
        categories="imagenet",
        preprocessing=Preprocessing(crop_size=299, resize_size=math.floor(299 / crop_pct), mean=mean, std=std,
                                    interpolation="bicubic"),
        model_kwargs=dict(model_kwargs or {}), checksum_note=UNPUBLISHED_NOTE,
        key_mapping=f"timm {model} names (ti.interop table of {model})", reported_accuracy=TIMM_ACCURACY,
        notes=notes)


PUBLISHED = [
    PublishedWeights(
        model="googlenet", tag="IMAGENET1K_V1", source="torchvision GoogLeNet_Weights.IMAGENET1K_V1",
        url="https://download.pytorch.org/models/googlenet-1378be20.pth", filename="googlenet-1378be20.pth",
        file_format="pytorch", num_classes=1000, categories="imagenet",
        preprocessing=Preprocessing(crop_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        model_kwargs={"transform_input": True, "aux_logits": False},
        sha256_prefix="1378be20", checksum_note=TORCHVISION_NOTE,
        key_mapping="torchvision googlenet names (ti.interop GoogLeNet table); the file also holds the untrained "
                    "aux heads, dropped unless aux_logits=True",
        file_size_mb=49.731, reported_accuracy="ImageNet-1K top-1 69.778, top-5 89.530 (torchvision)",
        notes="ported from the original paper; needs transform_input=True (set by the builder)"),
    PublishedWeights(
        model="inception_v3", tag="IMAGENET1K_V1", source="torchvision Inception_V3_Weights.IMAGENET1K_V1",
        url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        filename="inception_v3_google-0cc3c7bd.pth", file_format="pytorch", num_classes=1000,
        categories="imagenet",
        preprocessing=Preprocessing(crop_size=299, resize_size=342, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        model_kwargs={"transform_input": True, "aux_logits": True},
        sha256_prefix="0cc3c7bd", checksum_note=TORCHVISION_NOTE,
        key_mapping="torchvision inception_v3 names = ours (identity table); AuxLogits dropped when "
                    "aux_logits=False",
        file_size_mb=103.903, reported_accuracy="ImageNet-1K top-1 77.294, top-5 93.450 (torchvision)",
        notes="ported from TensorFlow; needs transform_input=True (set by the builder)"),
    _timm("inception_v3", "tf_in1k", 0.875, model_kwargs={"aux_logits": False},
          notes="Ross Wightman's port of the TensorFlow-Slim weights (inception_v3_2016_08_28)"),
    _timm("inception_v3", "tf_adv_in1k", 0.875, model_kwargs={"aux_logits": False},
          notes="port of TensorFlow's adversarially trained Inception-v3 (adv_inception_v3_2017_08_18)"),
    _timm("inception_v3", "gluon_in1k", 0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD,
          model_kwargs={"aux_logits": False}, notes="from the Gluon model zoo; ImageNet mean/std"),
    _timm("inception_v4", "tf_in1k", 0.875, notes="port of the TensorFlow-Slim weights"),
    _timm("inception_resnet_v2", "tf_in1k", 0.8975,
          notes="port of TensorFlow's inception_resnet_v2_2016_08_30"),
    _timm("inception_resnet_v2", "tf_ens_adv_in1k", 0.8975,
          notes="port of TensorFlow's ens_adv_inception_resnet_v2_2017_08_18 (ensemble adversarial training)"),
    PublishedWeights(
        model="bn_inception", tag="imagenet", source="pretrainedmodels (Cadene) bninception 'imagenet'",
        url="http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
        filename="bn_inception-52deb4733.pth", file_format="pytorch legacy (2017)", num_classes=1000,
        categories="imagenet",
        preprocessing=Preprocessing(crop_size=224, resize_size=256, mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0),
                                    channel_order="BGR", value_range=255),
        checksum_note=UNPUBLISHED_NOTE + "; the name's suffix 52deb4733 is not checked (pretrainedmodels does not)",
        key_mapping="Cadene's Caffe names (ti.interop BNInception table); num_batches_tracked filled with 0 "
                    "(the 2017 file predates it)",
        reported_accuracy="ImageNet top-1 73.524, top-5 91.562 (pretrainedmodels README)",
        notes="a Caffe model ported with Python 2: BGR, 0-255, mean 104/117/128, std 1"),
]
for _tag, _classes, _size_mb, _lfw in (("vggface2", 8631, 107, "0.9965"), ("casia-webface", 10575, 111, "0.9905")):
    _stem = {"vggface2": "20180402-114759-vggface2", "casia-webface": "20180408-102900-casia-webface"}[_tag]
    PUBLISHED.append(PublishedWeights(
        model="inception_resnet_v1", tag=_tag, source=f"facenet-pytorch InceptionResnetV1(pretrained='{_tag}')",
        url=f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{_stem}.pt",
        filename=f"{_stem}.pt", file_format="pytorch", num_classes=_classes,
        categories=f"{_classes} identities of {'VGGFace2' if _tag == 'vggface2' else 'CASIA-WebFace'} "
                   f"(no names published)",
        preprocessing=Preprocessing(crop_size=160, resize_size=160, mean=(127.5,) * 3, std=(128.0,) * 3,
                                    value_range=255,
                                    note="facenet expects a 160x160 face crop from its MTCNN detector; this only "
                                         "resizes and centre-crops"),
        model_kwargs={"head": "facenet", "num_classes": _classes}, checksum_note=UNPUBLISHED_NOTE,
        key_mapping="facenet-pytorch names (ti.interop InceptionResNetV1 table, head='facenet')",
        file_size_mb=float(_size_mb),
        reported_accuracy=f"LFW face verification {_lfw} (facenet-pytorch README; not a classification top-1)",
        notes="a face-embedding network (512-d embedding then the identity classifier)"))
