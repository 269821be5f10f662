"""Publish a model's changes to topics, once the transaction that made them has committed.

``publish_changes(Message, topic=lambda m: f"room:{m.room_id}")`` connects receivers to the
model's ``pre_save``, ``post_save`` and ``post_delete``. Each save or delete is recorded in
its transaction's batch (``gqlchannels.change_batch``), which publishes the coalesced
events after the commit (``gqlchannels.change_delivery``), so subscribers never hear of a
change that was rolled back.

A move between topics needs the topic the object had *before*: the topic subscribers were
told, which is the topic of the row as committed. So the first save of an object in a
transaction reads that row (one query by primary key, plus whatever the topic function
reads) and computes its topic; later saves in the same transaction reuse it. The instance
as it was loaded would cost nothing but can be stale (loaded long ago, or built by hand with
a primary key), and would wrongly name a topic subscribers never heard of. Creates read
nothing. A delete takes the topic from the instance being deleted (Django's cascades load
those from the database).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from django.db.models import Field, Model
from django.db.models.signals import post_delete, post_save, pre_save

from . import change_batch
from .change_batch import ChangeKind, Touched
from .change_data import fields_data, plain

M = TypeVar("M", bound=Model)

#: Where ``pre_save`` leaves the topic read from the row for ``post_save``, by dispatch uid.
_BEFORE = "_gqlchannels_topic_before"
#: No row was read for this save (the transaction had read it, or the save inserts).
_UNREAD = object()

_publishers: dict[str, ChangePublisher[Any]] = {}
_lock = threading.Lock()


class ChangePublisher(Generic[M]):
    """One model's changes, published to topics on commit: what ``publish_changes`` returns.

    Keep it to ``disconnect()`` later (tests do); the receivers stay connected until then.
    """

    def __init__(
        self,
        model: type[M],
        topic: Callable[[M], str | None],
        fields: tuple[Field[Any, Any], ...],
        serialize: Callable[[M], Mapping[str, Any]] | None,
        using: str | None,
        dispatch_uid: str,
    ) -> None:
        self.model = model
        self.label = model._meta.label_lower
        self.using = using
        self.dispatch_uid = dispatch_uid
        self._topic = topic
        self._fields = fields
        self._serialize = serialize

    def topic_of(self, instance: M) -> str | None:
        """The topic ``instance`` is published to in its current state (None: not published)."""
        return self._topic(instance)

    def data_of(self, instance: M) -> dict[str, Any]:
        """``instance``'s event data: the chosen fields, or what ``serialize`` returns, as
        plain JSON data."""
        if self._serialize is None:
            return fields_data(instance, self._fields)
        data: dict[str, Any] = plain(dict(self._serialize(instance)))
        return data

    def connect(self) -> None:
        """Connect the receivers (``publish_changes`` does)."""
        uid, model = self.dispatch_uid, self.model
        pre_save.connect(self._pre_save, sender=model, weak=False, dispatch_uid=uid)
        post_save.connect(self._post_save, sender=model, weak=False, dispatch_uid=uid)
        post_delete.connect(self._post_delete, sender=model, weak=False, dispatch_uid=uid)

    def disconnect(self) -> None:
        """Stop publishing this model's changes (changes already committed still go out)."""
        with _lock:
            self._disconnect_receivers()
            if _publishers.get(self.dispatch_uid) is self:
                del _publishers[self.dispatch_uid]

    def _disconnect_receivers(self) -> None:
        for signal in (pre_save, post_save, post_delete):
            signal.disconnect(sender=self.model, dispatch_uid=self.dispatch_uid)

    def _covers(self, using: str) -> bool:
        return self.using is None or using == self.using

    def _pre_save(self, sender: type[M], instance: M, raw: bool, using: str, **_: Any) -> None:
        instance.__dict__.get(_BEFORE, {}).pop(self.dispatch_uid, None)
        if raw or not self._covers(using) or self._inserts(instance):
            return
        batch = change_batch.live_batch(using)
        if batch is not None and (self.dispatch_uid, instance.pk) in batch.touched:
            return  # this transaction read the row already
        row = self.model._base_manager.using(using).filter(pk=instance.pk).first()
        topic = None if row is None else self.topic_of(row)
        instance.__dict__.setdefault(_BEFORE, {})[self.dispatch_uid] = topic

    def _inserts(self, instance: M) -> bool:
        """Whether saving ``instance`` surely inserts a row (so there is no row to read):
        no primary key yet, or a new instance whose primary key has a default (Django then
        forces an insert)."""
        pk = self.model._meta.pk
        if instance.pk is None:
            return True
        return (
            instance._state.adding and pk is not None and (pk.has_default() or pk.has_db_default())
        )

    def _post_save(
        self, sender: type[M], instance: M, created: bool, raw: bool, using: str, **_: Any
    ) -> None:
        stash = instance.__dict__.get(_BEFORE, {})
        read = stash.pop(self.dispatch_uid, _UNREAD)
        if not stash:
            instance.__dict__.pop(_BEFORE, None)
        if raw or not self._covers(using):
            return
        if created:
            self._record(using, instance, "created", known=True, before=None)
        elif read is _UNREAD:
            self._record(using, instance, "updated", known=False, before=None)
        else:
            self._record(using, instance, "updated", known=True, before=read)

    def _post_delete(self, sender: type[M], instance: M, using: str, **_: Any) -> None:
        if self._covers(using):
            self._record(using, instance, "deleted", known=False, before=None)

    def _record(
        self, using: str, instance: M, kind: ChangeKind, *, known: bool, before: str | None
    ) -> None:
        pk = instance.pk

        def touched() -> Touched:
            return Touched(self.label, pk, before_topic=before, before_known=known)

        change_batch.record(
            using,
            (self.dispatch_uid, pk),
            touched,
            kind,
            self.topic_of(instance),
            self.data_of(instance),
        )


def publish_changes(
    model: type[M],
    *,
    topic: Callable[[M], str | None],
    fields: Iterable[str] | None = None,
    serialize: Callable[[M], Mapping[str, Any]] | None = None,
    using: str | None = None,
    dispatch_uid: str | None = None,
) -> ChangePublisher[M]:
    """Publish ``created``/``updated``/``deleted`` events for ``model`` after each commit.

    ``topic(instance)`` names the topic of an instance in its current state (None: publish
    nothing for it). The event is ``{"type", "model", "pk", "data"}``; ``data`` holds
    ``fields`` (names of concrete fields; all of them by default) as plain JSON data, or
    what ``serialize(instance)`` returns instead. ``using`` limits publishing to one
    database alias. Calling this again with the same ``dispatch_uid`` (by default one per
    model) replaces the earlier registration, so ``AppConfig.ready`` may run twice.
    """
    if not (isinstance(model, type) and issubclass(model, Model)) or model._meta.abstract:
        raise TypeError(f"publish_changes() needs a concrete model class, not {model!r}")
    if not callable(topic):
        raise TypeError("publish_changes() needs topic=callable(instance) -> str | None")
    if fields is not None and serialize is not None:
        raise TypeError("publish_changes() takes fields or serialize, not both")
    publisher = ChangePublisher(
        model,
        topic,
        _concrete_fields(model, fields),
        serialize,
        using,
        dispatch_uid or f"gqlchannels.changes:{model._meta.label_lower}",
    )
    with _lock:
        earlier = _publishers.get(publisher.dispatch_uid)
        if earlier is not None:
            earlier._disconnect_receivers()
        _publishers[publisher.dispatch_uid] = publisher
        publisher.connect()
    return publisher


def _concrete_fields(
    model: type[Model], names: Iterable[str] | None
) -> tuple[Field[Any, Any], ...]:
    concrete = {field.name: field for field in model._meta.concrete_fields}
    if names is None:
        return tuple(concrete.values())
    if isinstance(names, str):
        raise TypeError("fields is a sequence of field names, not one string")
    chosen = tuple(names)
    unknown = [name for name in chosen if name not in concrete]
    if unknown:
        raise ValueError(
            f"{model._meta.label} has no concrete field {', '.join(map(repr, unknown))}"
        )
    return tuple(concrete[name] for name in chosen)
