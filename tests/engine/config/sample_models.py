"""A small pydantic model shaped like ``channels.yaml``, for the configuration tests."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempts: int = 10


class MLLPListenerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["mllp_listener"]
    host: str = "0.0.0.0"
    port: int


class FileReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["file_reader"]
    path: str


Source = Annotated[Union[MLLPListenerConfig, FileReaderConfig], Field(discriminator="type")]  # noqa: UP007


class DestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: Literal["mllp_sender"]
    host: str
    port: int
    retry: Retry = Retry()


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Source
    destinations: list[DestinationConfig] = []


class Root(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: dict[str, ChannelConfig]


class Window(BaseModel):
    """Extra shapes: an alias, a plain union, int-keyed dict and a model validator."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: int = Field(alias="from")
    end: int
    timeout: Union[int, Retry, None] = None  # noqa: UP007
    weights: dict[int, float] = {}

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError("end must not be before from")
        return self
