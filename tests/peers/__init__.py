"""Real protocol peers for transport tests: an OpenSSH server and an ADB device emulator.

They are test infrastructure, not part of the package: ``sshd.SshServer`` runs Debian's real
``/usr/sbin/sshd``; ``adbd.AdbDeviceEmulator`` speaks the ADB wire protocol (CNXN/AUTH, streams,
legacy ``shell:``/``exec:`` and ``sync:``) and is checked against Debian's real ``adb`` client.
"""
