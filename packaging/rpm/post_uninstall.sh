# oxibeat: on erase ($1 = 0) only the configuration is kept (rpm keeps a changed one as
# oxibeat.toml.rpmsave); the user and state go.
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/oxibeat /var/log/oxibeat
    getent passwd oxibeat >/dev/null && userdel oxibeat || :
    getent group oxibeat >/dev/null && groupdel oxibeat || :
fi
[ -d /run/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1 || :
exit 0
