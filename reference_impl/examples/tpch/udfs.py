"""Python scalar UDFs of the bundled TPC-H example (registered from the manifest)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import ScalarUDF, udf


def _net_price(price: pa.Array, discount: pa.Array) -> pa.Array:
    return pc.multiply(price, pc.subtract(1.0, discount))


def _price_band(value: pa.Array) -> pa.Array:
    bands = pc.if_else(
        pc.less(value, 50_000.0),
        "small",
        pc.if_else(pc.less(value, 200_000.0), "medium", "large"),
    )
    return pc.cast(bands, pa.string())


net_price: ScalarUDF = udf(
    _net_price, [pa.float64(), pa.float64()], pa.float64(), "immutable", name="net_price"
)
price_band: ScalarUDF = udf(
    _price_band, [pa.float64()], pa.string(), "immutable", name="price_band"
)
