"""The seed article's Keras program, run on shendu with ONLY its three imports changed.

    keras.models -> shendu.models,  keras.layers -> shendu.layers,  keras.optimizers -> shendu.optimizers

The article calls it "linear regression", but the target is X**2: one Dense unit can only fit the best
straight line, which leaves a mean squared error of about 1/180 = 0.0056. The second part adds a hidden
layer with a non-linearity, which fits the curve closely.

Run:  python examples/seed_regression.py
"""
# ruff: noqa: E402, I001  (the article's program is kept verbatim: imports where it has them)

import shendu

shendu.seed(0)  # not in the article: makes the run reproducible

# ---------------------------------------------------------------- the article's program (imports changed)
import numpy as np

X = np.random.rand(100, 1)
y = X ** 2

from shendu.models import Sequential
from shendu.layers import Dense
model = Sequential()
model.add(Dense(1, input_dim=1))

from shendu.optimizers import SGD
optimizer = SGD(lr=0.01, momentum=0.9)      # `lr`: the old Keras name of learning_rate
model.compile(optimizer=optimizer, loss='mean_squared_error')
model.fit(X, y, epochs=1000, verbose=0)

preds = model.predict(X)
print(preds)

# ---------------------------------------------------------------- what it reached
final_mse = float(np.mean((preds - y) ** 2))
print(f"one Dense unit (a straight line): training MSE = {final_mse:.5f} (best possible line: ~{1 / 180:.5f})")

# ---------------------------------------------------------------- a two-layer variant that fits X**2
curve = Sequential()
curve.add(Dense(16, activation="tanh", input_dim=1))
curve.add(Dense(1))
curve.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), loss="mean_squared_error")
curve.fit(X, y, epochs=1000, verbose=0)
curve_mse = float(np.mean((curve.predict(X, verbose=0) - y) ** 2))
print(f"Dense(16, tanh) + Dense(1): training MSE = {curve_mse:.6f}")
