"""The smart-badge agent: position, duty status, dispatch inbox, panic, live stream and body-camera evidence."""
