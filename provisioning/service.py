"""The systemd unit that runs a device's agent, shipped in its bundle and enabled by the first-boot script.

The agent runs as the unprivileged ``kuzet`` account (the first-boot script creates it and lets it read the
device key), keeps its state in ``/var/lib/kuzet/<kind>`` (systemd creates it, owned by that account) and is
restarted whenever it stops. Kuzet itself is expected in a virtualenv at ``/opt/kuzet`` on the device image.
"""

from __future__ import annotations

DEVICE_KUZET = "/opt/kuzet/bin/kuzet"
CONFIG_DIR = "/etc/kuzet"
STATE_DIR = "/var/lib/kuzet"
ACCOUNT = "kuzet"

# What each kind needs beyond the unit's common part: the groups that own its hardware (cameras are
# /dev/video*, the badge's GPS is a serial port) and, for the badge, the terminal its officer uses.
_KIND = {
    "camera": {
        "description": "Kuzet street camera agent",
        "exec": f"{DEVICE_KUZET} camera --config {CONFIG_DIR}/config.toml",
        "groups": "video",
        "extra": "",
    },
    "badge": {
        "description": "Kuzet patrol badge agent",
        "exec": f"{DEVICE_KUZET} badge --config {CONFIG_DIR}/config.toml",
        "groups": "video dialout tty",
        # The officer's interface is on the badge's screen (tty1), in place of a login prompt.
        "extra": (
            "StandardInput=tty\nStandardOutput=tty\nStandardError=journal\n"
            "TTYPath=/dev/tty1\nTTYReset=yes\nTTYVHangup=yes\n"
        ),
    },
}


def unit_name(kind: str) -> str:
    return f"kuzet-{kind}.service"


def unit_text(kind: str) -> str:
    spec = _KIND[kind]
    conflicts = "Conflicts=getty@tty1.service\n" if kind == "badge" else ""
    return (
        "# Written by 'kuzet provision device'; installed and enabled by kuzet-firstboot.sh.\n"
        "[Unit]\n"
        f"Description={spec['description']}\n"
        "Wants=network-online.target time-sync.target\n"
        "After=network-online.target time-sync.target\n"
        f"{conflicts}"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"User={ACCOUNT}\n"
        f"Group={ACCOUNT}\n"
        f"SupplementaryGroups={spec['groups']}\n"
        f"ExecStart={spec['exec']}\n"
        f"StateDirectory=kuzet/{kind}\n"
        "StateDirectoryMode=0750\n"
        "Restart=always\n"
        "RestartSec=5\n"
        f"{spec['extra']}"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=strict\n"
        "ProtectHome=yes\n"
        "PrivateTmp=yes\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
