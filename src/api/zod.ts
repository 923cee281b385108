import { z } from 'zod';
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';

// Once, before any schema calls .openapi(): views and routes import this first.
extendZodWithOpenApi(z);
