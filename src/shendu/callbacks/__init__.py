"""Callbacks for ``fit``/``evaluate``/``predict`` with Keras's names, hooks and semantics."""

from shendu.callbacks.backup_and_restore import BackupAndRestore
from shendu.callbacks.callback import Callback
from shendu.callbacks.callback_list import CallbackList
from shendu.callbacks.csv_logger import CSVLogger
from shendu.callbacks.early_stopping import EarlyStopping
from shendu.callbacks.explain import Explain
from shendu.callbacks.history import History
from shendu.callbacks.lambda_callback import LambdaCallback, TerminateOnNaN
from shendu.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from shendu.callbacks.model_checkpoint import ModelCheckpoint
from shendu.callbacks.monitor import MonitorCallback
from shendu.callbacks.progbar_logger import ProgbarLogger
from shendu.callbacks.tensorboard import TensorBoard

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "Explain", "History",
           "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint", "MonitorCallback", "ProgbarLogger",
           "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]
