# The streamproc worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY streamproc ./streamproc
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --system --uid 10001 streamproc
COPY schemas ./schemas
COPY topologies ./topologies
USER streamproc
ENV STREAMPROC_DATA_DIR=/tmp/streamproc
EXPOSE 9464
ENTRYPOINT ["streamproc"]
CMD ["worker", "--topology", "topologies/customers.yaml", "--topology", "topologies/access.yaml"]
