# oxibeat: directories and permissions; reload systemd's units ($1 = 2 on upgrade).
install -d -m 0750 -o oxibeat -g oxibeat /var/lib/oxibeat /var/log/oxibeat
chown root:oxibeat /etc/oxibeat /etc/oxibeat/oxibeat.toml
chmod 0750 /etc/oxibeat
chmod 0640 /etc/oxibeat/oxibeat.toml
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    [ "$1" -ge 2 ] && systemctl try-restart oxibeat.service >/dev/null 2>&1 || :
fi
exit 0
