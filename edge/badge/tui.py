"""The badge's terminal interface: duty, position and the dispatch inbox, driven by single key presses.

Keys: a acknowledge, e en route, o on scene, r resolved (asks for a protocol note), d decline (asks for a
reason), s cycle duty status, p panic (asks to confirm), q quit. Actions go to the current dispatch (the
oldest open one).
"""

from __future__ import annotations

import curses
import time

from kuzet.edge.badge.agent import BadgeAgent
from kuzet.edge.badge.inbox import InboxError

HELP = "a:ack  e:en route  o:on scene  r:resolved  d:decline  s:duty  p:PANIC  q:quit"
ENTER, ESCAPE, BACKSPACES = (10, 13, curses.KEY_ENTER), 27, (8, 127, curses.KEY_BACKSPACE)


class BadgeScreen:
    def __init__(self, screen, agent: BadgeAgent):
        self.screen, self.agent = screen, agent
        self.message = "ready"
        self._new = 0  # dispatches not yet acknowledged, to beep when one arrives

    def put(self, row: int, text: str, attr: int = 0) -> None:
        height, width = self.screen.getmaxyx()
        if 0 <= row < height:
            self.screen.addnstr(row, 0, text.ljust(width - 1), width - 1, attr)

    def draw(self) -> None:
        view = self.agent.view()
        new = sum(item.state == "new" for item in view["inbox"])
        if new > self._new:
            curses.beep()
        self._new = new
        self.screen.erase()
        link = "ONLINE" if view["connected"] else "OFFLINE (queued)"
        flags = ("  REC" if view["recording"] else "") + ("  LIVE" if view["live"] else "")
        self.put(
            0,
            f"KUZET BADGE {view['device']}   DUTY: {view['duty'].upper().replace('_', ' ')}   {link}{flags}",
            curses.A_REVERSE,
        )
        fix = view["fix"]
        if fix is not None:
            where = f"GPS: {fix.lat:.5f}, {fix.lon:.5f} ({fix.source})"
        elif view["last_fix"] is not None:
            where = f"GPS: no fix; last {view['last_fix'].lat:.5f}, {view['last_fix'].lon:.5f}"
        else:
            where = "GPS: no fix"
        self.put(1, f"{where}   waiting to send: {view['outbox']}")
        row = 3
        current = view["current"]
        if current is None:
            self.put(row, "No open dispatch.")
            row += 2
        else:
            d = current.dispatch
            self.put(
                row,
                f"DISPATCH [{current.state.upper().replace('_', ' ')}] {d.severity.upper()} {d.event_type} ({d.mode})",
                curses.A_BOLD,
            )
            details = [
                f"place: {d.place.lat:.5f}, {d.place.lon:.5f}" + (f"  {d.address}" if d.address else "")
            ]
            if d.distance_m is not None:
                details.append(f"distance: {d.distance_m:.0f} m")
            if d.direction_deg is not None:
                details.append(f"suspect heading: {d.direction_deg:.0f} deg")
            if current.state == "new":
                details.append(f"acknowledge within {d.ack_deadline_s} s")
            if d.snapshot:
                details.append("snapshot: saved")
            self.put(row + 1, "  " + "   ".join(details))
            self.put(row + 2, "  " + (d.description or "").replace("\n", " ")[:200])
            row += 4
        self.put(row, "INBOX", curses.A_UNDERLINE)
        for item in view["inbox"][:6]:
            row += 1
            note = f" - {item.reason or item.note}" if (item.reason or item.note) else ""
            self.put(
                row,
                f"  {item.received_at[11:19]} {item.state:<12} {item.dispatch.severity:<8} {item.dispatch.event_type}{note}",
            )
        row += 2
        for notice in view["notices"][:5]:
            self.put(row, notice)
            row += 1
        height = self.screen.getmaxyx()[0]
        self.put(height - 2, self.message, curses.A_BOLD)
        self.put(height - 1, HELP, curses.A_REVERSE)
        self.screen.refresh()

    def ask(self, prompt: str, limit: int = 200) -> str | None:
        """A one-line answer; Esc cancels."""
        text = ""
        self.screen.timeout(-1)
        try:
            while True:
                self.message = f"{prompt}: {text}_   (Enter to send, Esc to cancel)"
                self.draw()
                key = self.screen.getch()
                if key in ENTER:
                    return text.strip()
                if key == ESCAPE:
                    return None
                if key in BACKSPACES:
                    text = text[:-1]
                elif 32 <= key < 0x110000 and len(text) < limit and key != curses.KEY_RESIZE:
                    text += chr(key)
        finally:
            self.screen.timeout(200)

    def handle(self, key: int) -> bool:
        """Act on one key; False to quit."""
        agent = self.agent
        char = chr(key) if 0 <= key < 256 else ""
        try:
            if char == "q":
                return False
            if char == "a":
                self.message = f"acknowledged {agent.acknowledge().dispatch.event_type}"
            elif char == "e":
                self.message = f"en route to {agent.en_route().dispatch.event_type}"
            elif char == "o":
                self.message = f"on scene at {agent.on_scene().dispatch.event_type}"
            elif char == "r":
                self.message = self._close_with_text("Protocol note", "resolve", "resolved", agent.resolve)
            elif char == "d":
                self.message = self._close_with_text(
                    "Reason for declining", "decline", "declined", agent.decline
                )
            elif char == "s":
                self.message = f"duty: {agent.cycle_duty().replace('_', ' ')}"
            elif char == "p":
                self.message = "PANIC? press y to confirm, any other key cancels"
                self.draw()
                self.screen.timeout(-1)
                confirm = self.screen.getch()
                self.screen.timeout(200)
                self.message = (
                    "PANIC SENT" if confirm in (ord("y"), ord("Y")) and agent.panic() else "panic cancelled"
                )
        except InboxError as exc:
            self.message = f"! {exc}"
        return True

    def _close_with_text(self, prompt: str, verb: str, done: str, act) -> str:
        """Resolve or decline the open dispatch with a text the officer types (Esc cancels)."""
        self.agent.target(None)  # say "no open dispatch" before asking for the text
        text = self.ask(prompt)
        return f"{verb} cancelled" if text is None else f"{done}: {act(text).dispatch.event_type}"


def run(agent: BadgeAgent) -> int:
    def main(screen) -> int:
        curses.curs_set(0)
        screen.timeout(200)
        ui = BadgeScreen(screen, agent)
        while True:
            ui.draw()
            key = screen.getch()
            if key == -1 or key == curses.KEY_RESIZE:
                continue
            if not ui.handle(key):
                return 0
            time.sleep(0)

    return curses.wrapper(main)
