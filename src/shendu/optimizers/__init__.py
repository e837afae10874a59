"""Optimisers and learning-rate schedules: ``shendu.optimizers`` (Keras names and defaults).

Each optimiser's update rule is written in its docstring. The same object trains Keras-style
(``model.compile(optimizer=SGD(lr=0.01, momentum=0.9))``, ``opt.apply_gradients(zip(grads, params))``)
and PyTorch-style (``opt = Adam(1e-3, params=model.parameters()); opt.step(); opt.zero_grad()``).

>>> from shendu import optimizers
>>> optimizers.get("adam")
Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False)
"""

from shendu.optimizers import schedules
from shendu.optimizers.adadelta import Adadelta
from shendu.optimizers.adagrad import Adagrad
from shendu.optimizers.adam import Adam, Adamax, AdamW, Nadam
from shendu.optimizers.lion import Lion
from shendu.optimizers.optimizer import Optimizer
from shendu.optimizers.rmsprop import RMSprop
from shendu.optimizers.serialization import deserialize, get, serialize
from shendu.optimizers.sgd import GD, SGD

__all__ = ["GD", "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Nadam", "Optimizer", "RMSprop",
           "deserialize", "get", "schedules", "serialize"]
