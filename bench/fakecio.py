"""The FakeCustomerIO stand-in with its profiles indexed, for benchmarks with many shoppers.

The tests' stand-in finds a person's profile by scanning every profile it holds, under its
lock: fine for a test's handful, quadratic for a benchmark. At 10,000 distinct shoppers the
scans alone cost the bench process about 11 s of CPU (and the fake's answers wait on them),
enough to slow the deliveries being measured. This subclass answers the same look-ups from
two dicts; what it records is unchanged.
"""

from __future__ import annotations

from connector.dev.fake_customerio import FakeCustomerIO, Profile


class BenchCustomerIO(FakeCustomerIO):
    """FakeCustomerIO whose profile look-ups are dict look-ups, not scans.

    Every profile is created, and only ever changed, inside `_resolve` (an id or email set
    once where it was None, on the profile it returns), so indexing what `_resolve` returns
    keeps the index whole. An id and an email belong to at most one profile each (the fake
    attaches, never duplicates); when the id and the email match two different profiles,
    the one created first wins, as with the scan.
    """

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._by_id: dict[str, Profile] = {}
            self._by_email: dict[str, Profile] = {}
            self._position: dict[int, int] = {}  # id(profile) -> its index in self.profiles

    def _find_profile(self, person_id: str | None, email: str | None) -> Profile | None:
        found = [
            profile
            for profile in (
                self._by_id.get(person_id) if person_id else None,
                self._by_email.get(email) if email else None,
            )
            if profile is not None
        ]
        return min(found, key=lambda p: self._position[id(p)], default=None)

    def _resolve(self, kind: str, value: str, email: str | None) -> Profile:
        profile = super()._resolve(kind, value, email)
        # A new profile is the last one appended (the lock is held throughout).
        self._position.setdefault(id(profile), len(self.profiles) - 1)
        if profile.id is not None:
            self._by_id.setdefault(profile.id, profile)
        if profile.email is not None:
            self._by_email.setdefault(profile.email, profile)
        return profile
