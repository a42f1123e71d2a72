# oxibeat: the service user, before the files that belong to it are laid down.
getent group oxibeat >/dev/null || groupadd --system oxibeat
getent passwd oxibeat >/dev/null || useradd --system --gid oxibeat \
    --home-dir /var/lib/oxibeat --no-create-home --shell /sbin/nologin \
    --comment "oxibeat log shipper" oxibeat
exit 0
