# The production image: Node.js, the compiled dist/ (HAProxy template included) and the
# production dependencies, run as a non-root user. Nothing is pulled from a registry.
#
# Build it with scripts/build-image.sh, not with `docker build .` in the repository: the
# script makes the base (Debian bookworm minbase from the apt mirror, plus this host's
# Node.js, imported as switchyard-base:local) and stages the build context, whose app/
# holds dist/, bin/, package.json, the example files and a node_modules/ installed with
# --omit=dev and without tsx (bin/switchyard.js needs it only beside the TypeScript sources).
ARG BASE=switchyard-base:local
FROM ${BASE}

# A fixed UID/GID, so volume permissions and `runAsNonRoot` checks can name it.
RUN groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid switchyard --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin switchyard

# Owned by root and not writable by the process: the application cannot change itself.
COPY app/ /app/
WORKDIR /app

ENV NODE_ENV=production \
    SWITCHYARD_CONFIG=/etc/switchyard/switchyard.yaml
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["node", "/app/bin/switchyard.js"]
CMD ["serve"]
