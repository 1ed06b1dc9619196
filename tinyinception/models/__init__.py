"""The Inception family, one file per network (``ti.models.googlenet()``, ``ti.models.create("inception_v3")``)."""
from .registry import create, get_weights, list_models, list_weights, register
from .inception_v1 import GoogLeNet, GoogLeNetOutputs, googlenet
from .inception_v2 import BNInception, bn_inception
from .inception_resnet import InceptionResNetV1, InceptionResNetV2, inception_resnet_v1, inception_resnet_v2
from .inception_v3 import InceptionOutputs, InceptionV3, inception_v3
from .inception_v4 import InceptionV4, inception_v4
