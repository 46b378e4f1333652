"""The read path's answers, built once per release: body, ETag, headers and each format.

A release with secrets has two: with the secret values in clear (read tokens, publishers) and
with them null (viewers and editors reading published config); each is built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from server.domain.formats import render
from server.instances import INSTANCE_PATTERN, parse_labels
from server.published import PerRelease, PublishedConfigs
from server.records import Release


@dataclass(eq=False)
class ConfigAnswer:
    """One release as `GET …/config` answers it; callers copy the headers, never change them."""

    release: Release
    reveal: bool
    etag: str
    json_body: bytes
    headers: dict[str, str]
    json_headers: dict[str, str]
    rendered: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    wired: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    """Per format, the head (all but Date and X-Request-Id) and body a held poll is sent
    (server/api/held_polls.py), built on first use."""

    @classmethod
    def of(cls, release: Release, reveal: bool) -> ConfigAnswer:
        """Serialise a release (secret values null unless reveal) and its headers."""
        body = {
            "app": release.app,
            "env": release.env,
            "version": release.version,
            "checksum": release.checksum,
            "items": release.shown_items(reveal=reveal),
            "gray": release.gray_active,
        }
        etag = f'"{release.checksum}"'
        headers = {"ETag": etag, "X-Config-Version": str(release.version)}
        json_headers = {**headers, "Content-Type": "application/json"}
        return cls(release, reveal, etag, orjson.dumps(body), headers, json_headers)

    def render(self, fmt: str) -> tuple[bytes, str]:
        """The release in a non-JSON format: (body, content type), rendered on first use."""
        cached = self.rendered.get(fmt)
        if cached is None:
            release = self.release
            cached = render(
                fmt,
                release.app,
                release.env,
                release.version,
                release.checksum,
                self.items_shown(),
            )
            self.rendered[fmt] = cached
        return cached

    def items_shown(self) -> dict[str, str]:
        """The items as text formats (and the compatible APIs) show them: they have no null,
        so a secret the reader may not see is left out."""
        release = self.release
        if self.reveal or not release.secret_keys:
            return release.items
        return {k: v for k, v in release.items.items() if k not in release.secret_keys}


@dataclass(eq=False)
class _Variants:
    """The clear and the masked answer of one release, each built on first use."""

    release: Release
    built: dict[bool, ConfigAnswer] = field(default_factory=dict)

    def get(self, reveal: bool) -> ConfigAnswer:
        reveal = reveal or not self.release.secret_keys
        answer = self.built.get(reveal)
        if answer is None:
            answer = self.built[reveal] = ConfigAnswer.of(self.release, reveal)
        return answer


@dataclass(frozen=True)
class Reader:
    """Who reads, as it named itself: an instance id and its labels (text as sent, parsed
    only when a gray release needs them)."""

    instance: str | None
    labels_text: str | None

    @property
    def identified(self) -> str | None:
        """The instance id when it is in pattern (a gray release may take it), else None."""
        instance = self.instance
        if instance is None or INSTANCE_PATTERN.fullmatch(instance) is None:
            return None
        return instance

    @property
    def labels(self) -> dict[str, str]:
        """The labels; none when they are out of pattern (such a reader is not listed)."""
        if not self.labels_text:
            return {}
        try:
            return parse_labels(self.labels_text)
        except ValueError:
            return {}


ANONYMOUS = Reader(None, None)


class ConfigAnswers:
    """The answer of each env's latest release, built on first read, dropped when replaced."""

    def __init__(self, published: PublishedConfigs) -> None:
        self.published = published
        self._answers = PerRelease(_Variants)
        # An active gray release's answers, beside its env's main release's.
        self._gray = PerRelease(_Variants)
        published.add_listener(self._release_applied)
        published.add_gray_listener(lambda r: self._gray.forget((r.app, r.env)))
        published.add_removal_listener(self._forget_app)
        published.add_env_removal_listener(self._forget_env)

    def current(
        self, app: str, env: str, reveal: bool, reader: Reader = ANONYMOUS
    ) -> ConfigAnswer | None:
        """The answer for the release this reader gets (the main release, or the active gray
        release when its rule takes the reader), or None before the env's first; secret
        values null unless reveal."""
        published = self.published
        if reader.instance is None or published.gray(app, env) is None:
            release = published.get(app, env)
        else:
            release = published.for_reader(app, env, reader.identified, reader.labels)
        return None if release is None else self.of(release, reveal)

    def of(self, release: Release, reveal: bool) -> ConfigAnswer:
        """The answer for release (held until a newer release of its env replaces it)."""
        held = self._gray if release.gray_active else self._answers
        return held.of(release).get(reveal)

    def _release_applied(self, release: Release) -> None:
        # Built again on the next read: an env nobody reads over HTTP holds no bytes here.
        self._forget_env(release.app, release.env)

    def _forget_env(self, app: str, env: str) -> None:
        self._answers.forget((app, env))
        self._gray.forget((app, env))

    def _forget_app(self, app: str) -> None:
        self._answers.forget_app(app)
        self._gray.forget_app(app)
