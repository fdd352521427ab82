# The hub image for docker-compose: FlaskHub with PostgreSQL support and the Docker SDK.
# FlaskHub itself goes in as a wheel built in a stage of its own, so the image holds one
# copy of it (in site-packages), not the source besides.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY app ./app
COPY proxy/*.py proxy/package.json proxy/package-lock.json ./proxy/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
WORKDIR /srv
# The dependencies first, in a layer of their own that only setup.cfg changes rebuild
# (an empty README and packages stand in for the real ones here).
COPY setup.cfg pyproject.toml requirements.lock ./
RUN mkdir app proxy && touch README.md app/__init__.py proxy/__init__.py \
    && pip install --no-cache-dir ".[postgres]" -c requirements.lock \
    && pip uninstall -y -q flaskhub \
    && rm -rf README.md app proxy build ./*.egg-info setup.cfg pyproject.toml requirements.lock
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
EXPOSE 8081
CMD ["flaskhub", "run"]
